"""Similarity: token-to-token cosines, the embedding space as a map, and any two items compared."""

import streamlit as st

from ctxrec.export import matrix_csv
from ctxrec.inspect.similarity import compare_items, token_similarity
from ctxrec.viz import embedding_map_figure, heatmap_figure
from ui import state
from ui.options import pick_item
from ui.page_setup import context_summary, prepare

st.title("🧭 Similarity")
page = prepare()
catalog, recommender, context = page.catalog, page.recommender, page.context
context_summary(context)

st.subheader("Token by token")
item_id = pick_item(page.ranking)
source = st.radio("Compare the item with", ("the intent", "the whole context"),
                  key="sim_source", horizontal=True)
query = context.intent.strip() if source == "the intent" else page.context_text
if not query:
    st.info("The intent is empty: type one on the Recommend page, or compare with the whole "
            "context.")
elif item_id is not None:
    sims = token_similarity(recommender.encoder, query, catalog.text(item_id))
    marks = [(int(j), i) for i, j in enumerate(sims.best)]
    st.plotly_chart(heatmap_figure(sims.cosines, sims.item_tokens, sims.query_tokens,
                                   value_name="cosine", colorscale="RdBu", zmin=-1, zmax=1,
                                   marks=marks), key="token_sim")
    st.caption(f"Rows: {source[4:]} tokens; columns: item tokens; ○ marks each row's best match. "
               f"MaxSim = Σ best = {sims.maxsim:.2f} over {len(sims.query_tokens)} tokens "
               f"(mean {sims.maxsim / max(1, len(sims.query_tokens)):.2f}); the pooled sentence "
               f"cosine the recommender uses is {sims.pooled:.2f}.")
    st.download_button("Download the cosines (CSV)",
                       matrix_csv(sims.cosines, sims.query_tokens, sims.item_tokens),
                       file_name="token-cosines.csv", key="sim_csv")

st.subheader("The embedding space")
extra_names = ["context"] + (["intent"] if context.intent.strip() else [])
extra_texts = [page.context_text] + ([context.intent.strip()] if context.intent.strip() else [])
extra = recommender.encoder.encode(extra_texts)
coords, extra_coords, method = state.projection(
    recommender.encoder.fingerprint(), catalog.content_hash(), tuple(extra_texts),
    recommender.vectors, extra)
top = [catalog.position(i) for i in page.ranking.table["item_id"]]
groups = catalog.items["category"] if catalog.has("category") else ["item"] * len(catalog)
st.plotly_chart(embedding_map_figure(coords, list(catalog.items["title"]), list(groups),
                                     dict(zip(extra_names, map(tuple, extra_coords))), top),
                key="embedding_map")
st.caption(f"{method} of {len(catalog):,} item vectors; ★ the encoded context and intent placed "
           "in the same plane; ○ the current top-k. Distances on a 2-D map only approximate "
           "cosines in the full space.")

st.subheader("Two items")
ids = list(catalog.ids)
left, right = st.columns(2)
a = left.selectbox("First item", ids, key="sim_a", format_func=catalog.title)
b = right.selectbox("Second item", ids, index=min(1, len(ids) - 1), key="sim_b",
                    format_func=catalog.title)
cosine, shared, rank = compare_items(catalog, recommender.vectors, a, b)
st.metric("Cosine", f"{cosine:.3f}")
st.caption(f"{catalog.title(b)} is neighbour no. {rank} of {catalog.title(a)} among "
           f"{len(catalog) - 1:,} items. Shared tags: {', '.join(shared) if shared else 'none'}.")
