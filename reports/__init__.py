"""breedwatch reports."""
