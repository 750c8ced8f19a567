"""LangChain's ChatOllama pointed at Billumy, unchanged but for the auth header."""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_ollama import ChatOllama, OllamaEmbeddings

from tests.e2e.server import Server


def test_chat_ollama_invoke_and_stream(server: Server) -> None:
    llm = ChatOllama(
        model="billumy",
        base_url=server.url,
        client_kwargs={"headers": server.headers},
        num_predict=12,
        temperature=0,
        seed=5,
    )
    reply = llm.invoke([SystemMessage("Be brief."), HumanMessage("Olá! Quem é você?")])
    assert isinstance(reply.content, str) and reply.content.strip()
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0
    pieces = [chunk.content for chunk in llm.stream("Conte até três.")]
    assert len(pieces) >= 2 and "".join(str(p) for p in pieces).strip()


def test_ollama_embeddings(server: Server) -> None:
    emb = OllamaEmbeddings(
        model="billumy", base_url=server.url, client_kwargs={"headers": server.headers}
    )
    vectors = emb.embed_documents(["receita", "despesa"])
    assert len(vectors) == 2 and len(vectors[0]) == 576
