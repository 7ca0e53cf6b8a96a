"""One downloaded image's bytes -> the training JPEG: sniff, decode, EXIF orientation, resize, encode."""
