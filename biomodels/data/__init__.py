"""Task data: Documents and files in, model features out, predictions back to text.

`ner` (IOB2 examples from Documents, word-window features, decoding), `re_candidates`,
`re_marking`, `re_features` and `re_masked_tsv` (relation extraction: candidate pairs, argument
marking, windowed features, BLUE/BioELECTRA sentence files), `qa` (SQuAD v1.1), `batching`
(dynamic padding, length-grouped sampling) and `loading` (training and evaluation data from
whatever the user has: any format the readers know, or a dataset folder).
"""
