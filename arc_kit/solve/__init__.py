"""From a loaded model to two attempts per test input: loading, decoding (greedy and depth-first search), prompts,
re-scoring under augmented views, selection, and the solver that strings them together for the runner."""
