"""Inference side: loads registered models by URI and scores rows. Never imports training code."""
