"""facelens on AWS Lambda: the entry point that runs the recognizer on S3 events."""
