"""Session recording (crash-safe writer), reading recorded sessions back, replay as a source."""
