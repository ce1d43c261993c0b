"""Hub-facing LLM-AAC code: configs, models, feature extractor, processor, pipeline.

Every file in this folder is a flat sibling using single-dot imports so that the folder can be
uploaded as `trust_remote_code` files. Importing this package registers all classes with the
transformers Auto* factories in-process.
"""

# --- EAT encoder ---
from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification

from .configuration_eat import EATConfig
from .modeling_eat import EATForAudioClassification, EATModel, EATModelOutput, EATPreTrainedModel

AutoConfig.register(EATConfig.model_type, EATConfig, exist_ok=True)
AutoModel.register(EATConfig, EATModel, exist_ok=True)
AutoModelForAudioClassification.register(EATConfig, EATForAudioClassification, exist_ok=True)
# save_pretrained then writes `auto_map` and copies the modeling files for trust_remote_code loading.
EATConfig.register_for_auto_class()
EATModel.register_for_auto_class("AutoModel")
EATForAudioClassification.register_for_auto_class("AutoModelForAudioClassification")

# --- Feature extractor: Kaldi fbank (EAT input), Morlet scalogram, original LLM-AAC CWT ---
from transformers import AutoFeatureExtractor

from .configuration_eat import EATConfig
from .configuration_llm_aac import LLMAACConfig
from .feature_extraction_llm_aac import LLMAACFeatureExtractor

# Both the encoder's and the captioner's checkpoints carry a preprocessor_config.json for it.
AutoFeatureExtractor.register(EATConfig, LLMAACFeatureExtractor, exist_ok=True)
AutoFeatureExtractor.register(LLMAACConfig, LLMAACFeatureExtractor, exist_ok=True)
LLMAACFeatureExtractor.register_for_auto_class()
