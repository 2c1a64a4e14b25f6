#!/usr/bin/env bash
# Asking tracefeed's agent, with and without a model. Run `tracefeed up` and the
# feature stage first (features API on 127.0.0.1:9465).
set -euo pipefail

# No model: deterministic answers to the common questions.
npx tracefeed ask "which workloads had TCP retransmits in the last five minutes?"
npx tracefeed ask "anomalies now" -o json | jq '.answer, .citations'

# A local model through Ollama's OpenAI-compatible endpoint.
OPENAI_BASE_URL=http://127.0.0.1:11434/v1 TRACEFEED_AGENT_MODEL=qwen2.5:7b-instruct \
  npx tracefeed ask "what changed on this node in the last 10 minutes, and why?"

# The service: POST /v1/ask (with a conversation id) and analyses on tracefeed.analyses.v1.
OPENAI_BASE_URL=http://127.0.0.1:8000/v1 TRACEFEED_AGENT_MODEL=meta-llama/Llama-3.1-8B-Instruct \
  npx tracefeed agent serve --port 9466 &
sleep 3
curl -s localhost:9466/v1/ask -d '{"question":"which workloads had TCP retransmits in the last five minutes?","conversation_id":"ops-1"}' | jq .answer
curl -sN localhost:9466/v1/ask -H 'accept: text/event-stream' -d '{"question":"and which of them also had resets?","conversation_id":"ops-1"}'
curl -s localhost:9466/metrics | grep tracefeed_agent_
