"""Reading and writing frames: sequences, EXR, frame sources, ingest, colour, output layers, contact sheets."""
