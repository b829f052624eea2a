"""PANfm."""
