"""Typed, validated settings; generated files in the data folder; secrets at rest (Fernet).

The work is split by job: `values.py` declares every setting and loads its value (environment
over `settings.json` over the default), `numbers.py` reads bounded numbers, `files.py` keeps the
data folder's files private and writes them atomically (`settings.json` included), and
`secretbox.py` holds the secrets at rest. Other code imports these names from the front door, `config.py`.
"""
