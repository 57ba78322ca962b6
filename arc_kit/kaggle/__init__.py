"""Everything that talks to Kaggle or lays out files for it: the client (the only `kaggle` import), the
kernel's mount paths, uploads, the kernel folder, the wheelhouse."""
