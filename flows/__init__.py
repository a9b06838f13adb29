"""breedwatch flows."""
