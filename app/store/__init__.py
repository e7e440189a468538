"""SQLite storage: learner progress, shared pairs and cached run outputs."""
