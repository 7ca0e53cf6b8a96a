"""`babylm.prep`: raw BabyLM data -> shards. The library (`sources`, `images`, `sharding`, `text`)
raises `errors.PrepError` and never imports click; `cli` is the `babylm-prep` command."""
