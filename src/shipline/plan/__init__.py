"""The compiled plan of a run: `compile_plan(workflow, event) -> Plan`.

Pure: the same workflow and event always give the same plan and the same digest. Matrix
cells are expanded here when their values are known; a matrix built by an expression from
earlier jobs' outputs is expanded by the engine when those jobs finish, with the same code.
"""
