"""Finding and following faces: detection, landmarks, linking, smoothing, the track file, alignment, mattes."""
