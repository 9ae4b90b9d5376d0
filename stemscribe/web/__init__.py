"""The browser page served by `stemscribe serve` at `/`: plain ES modules and CSS, no build step."""
