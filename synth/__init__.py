"""The agentic data-synthesis pipeline on Ray. Not built yet; see the synthesis issue."""
