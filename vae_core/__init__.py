"""vae_core: the UI-free engine of VAE Workshop Lab.

Datasets (`data`), AE/VAE models (`models`), ELBO terms (`elbo`), the step-able trainer
(`train`), inference helpers (`inference`), projections (`projection`) and safe checkpoints
(`checkpoint`). Importing this package does no work: no data is read, no model is built.
It never imports streamlit.
"""

__version__ = "0.1.0"
