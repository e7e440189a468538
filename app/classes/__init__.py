"""Live classes: an instructor, a join code, learners following along."""
