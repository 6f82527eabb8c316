"""The `hydranet` command and its verbs: thin wrappers over model/, runtime/, train/ and ros/."""
