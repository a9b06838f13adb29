"""breedwatch schemas."""
