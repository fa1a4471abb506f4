"""The conversation features (replies, reactions, edits, deletes, typing, read receipts,
mentions, notifications), as pure modules the hub, store, mesh and UI call.

``kinds``: value types and edge validation; ``reducer``: the state a row shows;
``signals``: typing, read marks, reach, flood limits; ``emoji``, ``mentions``, ``notify``;
``prefs``: per-device preferences; ``views``: the row state and events the UI port uses;
``commands``: the headless peer's /reply /react /edit /delete /typing /read.
docs/conversation.md is the wire draft.
"""
