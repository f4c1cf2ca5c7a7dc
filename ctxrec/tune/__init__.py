"""Language models tuned on interaction logs: the sentence encoder (``encoder``)."""
