"""Hub-facing LLM-AAC code: configs, models, feature extractor, processor, pipeline.

Every file in this folder is a flat sibling using single-dot imports so that the folder can be
uploaded as `trust_remote_code` files. Importing this package registers all classes with the
transformers Auto* factories in-process.
"""
