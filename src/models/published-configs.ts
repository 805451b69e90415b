/**
 * config.json of published models (the fields loralab reads), for random-weight checkpoints of real sizes
 * (scripts/random-checkpoint.ts) and the benchmark shapes (src/cli/bench-setup.ts).
 */
export const PUBLISHED_CONFIGS: Record<string, Record<string, unknown>> = {
  // HuggingFaceTB/SmolLM-135M
  "smollm-135m": {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    bos_token_id: 0,
    eos_token_id: 0,
  },
  // TinyLlama/TinyLlama-1.1B-Chat-v1.0
  "tinyllama-1.1b": {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 2048,
    intermediate_size: 5632,
    num_hidden_layers: 22,
    num_attention_heads: 32,
    num_key_value_heads: 4,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  },
};
