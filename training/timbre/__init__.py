"""The instrument-family (timbre) classifier: data generator (`data`), `train`, `evaluate`, `export`."""
