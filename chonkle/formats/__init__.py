"""Format adapters: each turns a format's own metadata into chonkle pipelines and reads its
chunks through them (``tiff``: TIFF, GeoTIFF and COG). They sit above the pipeline engine and
only call down into it."""
