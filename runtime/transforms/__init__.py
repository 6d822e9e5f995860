"""Windows of signal to images: spectrograms, scalograms, recurrence plots, waveforms (NumPy or CuPy)."""
