"""A real MCP client (the Python `mcp` package) driving `firehose mcp` over stdio.

Usage: mcp_client.py FIREHOSE_BIN FIREHOSE_URL

Prints one JSON object per line, flushed, for the Rust test that runs it:
  {"tools": [...]}                       the tools listed, with their input schemas
  {"progress": p, "total": t, "message": m}   each progress notification
  {"result": ..., "is_error": bool}      what subscribe_bounties returned
  {"listed": ..., "is_error": bool}      what list_bounties returned afterwards
  {"waited": ..., "is_error": bool}      subscribe_bounties for what nobody publishes,
                                         with a short timeout
"""

import asyncio
import json
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def emit(value):
    print(json.dumps(value), flush=True)


async def main(binary, url):
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


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
