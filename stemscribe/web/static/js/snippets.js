// The request each paid API's client would send, pointed at this server, for one uploaded audio.

const KEY_VAR = "$STEMSCRIBE_API_KEY";

function shellQuote(text) {
  return `'${String(text).replace(/'/g, `'\\''`)}'`;
}

function curl(base, path, body, auth) {
  return [
    `curl -X POST ${shellQuote(base + path)} \\`,
    auth ? `  -H "Authorization: Bearer ${KEY_VAR}" \\` : null,
    `  -H 'Content-Type: application/json' \\`,
    `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
  ]
    .filter((line) => line !== null)
    .join("\n");
}

/**
 * One entry per API dialect: `{id, title, note, command}`.
 * `base` is the server's origin; `audioId` the upload's id; with `auth`, the commands send
 * `Authorization: Bearer $STEMSCRIBE_API_KEY` (a server that needs no key from here gets none).
 */
export function dialectRequests(base, audioId, { auth = true } = {}) {
  const origin = String(base).replace(/\/+$/, "");
  return [
    {
      id: "acedata",
      title: "AceData",
      note: "POST /suno/midi",
      command: curl(origin, "/suno/midi", { audio_id: audioId }, auth),
    },
    {
      id: "aimusicapi",
      title: "aimusicapi",
      note: "POST /api/v1/suno/midi",
      command: curl(origin, "/api/v1/suno/midi", { clip_id: audioId }, auth),
    },
    {
      id: "kie",
      title: "kie.ai",
      note: "POST /api/v1/midi/generate (answers via callBackUrl)",
      command: curl(origin, "/api/v1/midi/generate", {
        taskId: audioId,
        audioId,
        callBackUrl: "https://your-app.example/midi-callback",
      }, auth),
    },
  ];
}
