"""Your Digit: draw or upload a digit, see it as the model sees it, encode and score it."""
import streamlit as st

st.title("Your Digit")
st.info("Coming soon.")
