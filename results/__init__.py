"""Results: the versioned record of each evaluated cell, and where it is stored."""
