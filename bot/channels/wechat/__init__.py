"""The WeChat Official Account channel: callbacks in, passive replies and API sends out."""
