"""Generation engines kept in sync with the policy: the in-process vLLM engine, merged weights, the reaper."""
