"""Pure figure builders: arrays and records in, plotly ``go.Figure`` out. No streamlit, no torch."""
