"""Input and output at the data boundary: eager frames (:mod:`.frames`) and batch sources (:mod:`.sources`)."""
