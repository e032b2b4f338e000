"""Pure views: grid images, plotly figures and pandas tables (no Streamlit)."""
