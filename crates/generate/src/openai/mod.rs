//! The `openai` provider: any OpenAI-compatible endpoint. (Being built.)
