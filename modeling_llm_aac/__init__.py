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

# --- LLM-AAC captioner: config, model (projector + causal LM + LoRA), processor ---
from transformers import AutoProcessor

from .configuration_llm_aac import DEFAULT_LORA, LLMAACConfig, count_audio_tokens
from .modeling_llm_aac import LLMAACCausalLMOutputWithPast, LLMAACForConditionalGeneration, LLMAACPreTrainedModel
from .processing_llm_aac import DEFAULT_PROMPT, LLMAACProcessor
from .projectors import LLMAACLinearProjector, LLMAACQFormerProjector

AutoConfig.register(LLMAACConfig.model_type, LLMAACConfig, exist_ok=True)
# There is no separate headless LLMAACModel (the language model is kept whole so that peft can wrap any
# causal LM), so AutoModel and the multimodal-LM auto class both give the captioner.
AutoModel.register(LLMAACConfig, LLMAACForConditionalGeneration, exist_ok=True)
AutoProcessor.register(LLMAACConfig, LLMAACProcessor, exist_ok=True)
LLMAACConfig.register_for_auto_class()
LLMAACForConditionalGeneration.register_for_auto_class("AutoModel")
LLMAACProcessor.register_for_auto_class()
try:  # transformers >= 5.0
    from transformers import AutoModelForMultimodalLM

    AutoModelForMultimodalLM.register(LLMAACConfig, LLMAACForConditionalGeneration, exist_ok=True)
except ImportError:  # pragma: no cover - depends on the installed transformers
    pass

# --- Feature extractor: Kaldi fbank (EAT input), Morlet scalogram, original LLM-AAC CWT ---
from transformers import AutoFeatureExtractor

from .configuration_eat import EATConfig
from .configuration_llm_aac import LLMAACConfig
from .feature_extraction_llm_aac import LLMAACFeatureExtractor

# Both the encoder's and the captioner's checkpoints carry a preprocessor_config.json for it.
AutoFeatureExtractor.register(EATConfig, LLMAACFeatureExtractor, exist_ok=True)
AutoFeatureExtractor.register(LLMAACConfig, LLMAACFeatureExtractor, exist_ok=True)
LLMAACFeatureExtractor.register_for_auto_class()

# --- CLAP rescoring: EAT-CLAP model and the scorer interface ---
from .clap_scoring import (
    CandidateRanking,
    CLAPScorer,
    EATClapScorer,
    TransformersClapScorer,
    deduplicate_candidates,
    load_clap_scorer,
    rank_candidates,
)
from .clap_torch_preprocessing import ClapTorchPreprocessor
from .configuration_eat_clap import EATClapConfig
from .modeling_eat_clap import EATClapModel, EATClapOutput, EATClapPreTrainedModel

AutoConfig.register(EATClapConfig.model_type, EATClapConfig, exist_ok=True)
AutoModel.register(EATClapConfig, EATClapModel, exist_ok=True)
EATClapConfig.register_for_auto_class()
EATClapModel.register_for_auto_class("AutoModel")

# --- Captioning: caption candidates, fast decoding, pipeline("audio-captioning") ---
from .caption_candidates import CandidateOptions, CaptionCandidate, generate_candidates, generate_captions
from .fast_generation import FastCaptionGenerator
from .pipeline_audio_captioning import AudioCaptioningPipeline, register_audio_captioning_pipeline, save_captioner

register_audio_captioning_pipeline()

# --- EAT pretraining: the utterance-frame objective (student, CNN decoder, EMA teacher) ---
from transformers import AutoModelForPreTraining

from .modeling_eat_pretraining import EATForPreTraining, EATForPreTrainingOutput

AutoModelForPreTraining.register(EATConfig, EATForPreTraining, exist_ok=True)
EATForPreTraining.register_for_auto_class("AutoModelForPreTraining")
