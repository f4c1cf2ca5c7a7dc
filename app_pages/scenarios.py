"""Scenarios: save, rename, load and delete named contexts; export and import them as JSON."""

import streamlit as st

from ctxrec.data.scenarios import Scenario, ScenarioError, scenarios_from_json, scenarios_to_json
from ui import state
from ui.context_editor import apply_scenario
from ui.page_setup import context_summary, prepare

st.title("💾 Scenarios")
page = prepare()
store = state.scenario_store()
context_summary(page.context)

st.subheader("Save the current context")
name_col, story_col = st.columns([1, 2])
name = name_col.text_input("Name", key="scn_name", max_chars=120)
story = story_col.text_input("One-line story", key="scn_story", max_chars=500)
if st.button("Save", key="scn_save", type="primary"):
    if not name.strip():
        st.error("Give the scenario a name first.")
    else:
        existed = name.strip() in store.names()
        store.save(Scenario(name.strip(), story, page.context))
        st.success(f"{'Replaced' if existed else 'Saved'} “{name.strip()}”.")

st.subheader("Saved")
names = store.names()
if not names:
    st.info("Nothing saved yet. The ⭐ presets are always available in the sidebar.")
else:
    chosen = st.selectbox("Scenario", names, key="scn_chosen")
    try:
        scenario = store.load(chosen)
    except (ScenarioError, ValueError) as err:
        st.error(f"“{chosen}” can no longer be read ({err}); delete it or import a fixed copy.")
        scenario = None
    if scenario is not None:
        st.caption(f"{scenario.story} — {scenario.context.describe_situation()}")
        unknown = scenario.unknown_items(page.catalog)
        if unknown:
            st.warning(f"{len(unknown)} history item(s) are not in {page.catalog.name} and will "
                       f"be ignored: {', '.join(unknown[:5])}")
        st.button("Load into the editor", key="scn_load", on_click=apply_scenario,
                  args=(scenario.context,))
    new_col, rename_col, delete_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    new_name = new_col.text_input("New name", key="scn_new_name", max_chars=120)
    if rename_col.button("Rename", key="scn_rename"):
        try:
            store.rename(chosen, new_name)
            st.rerun()
        except (ScenarioError, KeyError) as err:
            st.error(str(err))
    if delete_col.button("Delete", key="scn_delete"):
        store.delete(chosen)
        st.rerun()

st.subheader("Export and import")
saved = [store.load(n) for n in names if n]
st.download_button("Download saved scenarios (JSON)", scenarios_to_json(saved),
                   file_name="ctxrec-scenarios.json", mime="application/json", key="scn_export",
                   disabled=not saved)
upload = st.file_uploader("Import scenarios (JSON)", type=["json"], key="scn_import")
if upload is not None and st.session_state.get("scn_imported") != upload.file_id:
    try:
        imported = scenarios_from_json(upload.getvalue())
    except ScenarioError as err:
        st.error(f"Nothing imported: {err}")
    else:
        for scenario in imported:
            store.save(scenario)
        st.session_state["scn_imported"] = upload.file_id
        st.success(f"Imported {len(imported)} scenario(s).")
st.caption(f"Stored in {store.path} (set CTXREC_SCENARIOS to use another file).")
