"""breedwatch models."""
