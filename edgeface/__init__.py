"""edgeface: real-time face recognition for small devices.

Data flows one way: source -> detect -> chip -> embed -> match -> track -> publish.
"""

__version__ = "0.1.0"
