"""Report artefacts (plots) built from metric results."""
