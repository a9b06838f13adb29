"""breedwatch tasks."""
