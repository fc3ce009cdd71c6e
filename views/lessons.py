"""Lessons: ordered lists of views with their URL state and a note per step."""
import streamlit as st

st.title("Lessons")
st.info("Coming soon.")
