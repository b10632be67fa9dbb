"""A real MCP client (the Python `mcp` package) driving `firehose mcp` over stdio.

Usage: mcp_client.py FIREHOSE_BIN FIREHOSE_URL WATCHED_ID

Prints one JSON object per line, flushed, for the Rust test that runs it:
  {"tools": [...]}                       the tools listed, with their input schemas
  {"progress": p, "total": t, "message": m}   each progress notification
  {"result": ..., "is_error": bool}      what subscribe_bounties returned
  {"listed": ..., "is_error": bool}      what list_bounties returned afterwards
  {"waited": ..., "is_error": bool}      subscribe_bounties for what nobody publishes,
                                         with a short timeout
  {"progress": ...}                      subscribe_bounties(include_changes)'s progress
  {"changes_result": ..., "is_error": bool}  what it returned (the test changes a python
                                         bounty once the progress says "subscribed")
  {"progress": ...}                      watch_bounty(WATCHED_ID)'s progress notifications
  {"watched": ..., "is_error": bool}     what it returned (the test changes the bounty
                                         once the progress says "watching")
  {"watch_timeout": ..., "is_error": bool}  watch_bounty when nothing changes
  {"watch_after": ..., "is_error": bool}    watch_bounty with after_version 1
  {"watch_unknown": ..., "is_error": bool}  watch_bounty of an id that does not exist
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def emit(value):
    print(json.dumps(value), flush=True)


async def main(binary, url, watched):
    server = StdioServerParameters(command=binary, args=["mcp"], env={"FIREHOSE_URL": url})
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            emit({"tools": [{"name": t.name, "schema": t.input_schema} for t in listed.tools]})

            async def on_progress(progress, total, message):
                emit({"progress": progress, "total": total, "message": message})

            result = await session.call_tool(
                "subscribe_bounties",
                {"category": ["python"], "min_budget_cents": 50000, "max_results": 1, "timeout_ms": 120000},
                progress_callback=on_progress,
            )
            emit({"result": result.structured_content, "is_error": result.is_error})

            listed = await session.call_tool("list_bounties", {"category": ["python"], "limit": 5})
            emit({"listed": listed.structured_content, "is_error": listed.is_error})

            waited = await session.call_tool(
                "subscribe_bounties",
                {"category": ["cobol"], "tag": ["mainframe"], "max_results": 1, "timeout_ms": 1500},
            )
            emit({"waited": waited.structured_content, "is_error": waited.is_error})

            changed = await session.call_tool(
                "subscribe_bounties",
                {"category": ["python"], "max_results": 1, "timeout_ms": 120000, "include_changes": True},
                progress_callback=on_progress,
            )
            emit({"changes_result": changed.structured_content, "is_error": changed.is_error})

            watched_result = await session.call_tool(
                "watch_bounty",
                {"id": watched, "timeout_ms": 120000},
                progress_callback=on_progress,
            )
            emit({"watched": watched_result.structured_content, "is_error": watched_result.is_error})

            quiet = await session.call_tool("watch_bounty", {"id": watched, "timeout_ms": 1500})
            emit({"watch_timeout": quiet.structured_content, "is_error": quiet.is_error})

            after = await session.call_tool(
                "watch_bounty", {"id": watched, "timeout_ms": 60000, "after_version": 1}
            )
            emit({"watch_after": after.structured_content, "is_error": after.is_error})

            unknown = await session.call_tool(
                "watch_bounty", {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "timeout_ms": 60000}
            )
            emit({"watch_unknown": unknown.structured_content, "is_error": unknown.is_error})


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
