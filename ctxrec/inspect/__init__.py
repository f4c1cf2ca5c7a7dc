"""The teaching core: attention read from the models (per layer and head, rollout), token
similarity and the step-by-step softmax(QKᵀ/√d)V view. Computes data; ``ctxrec.viz`` draws it."""
