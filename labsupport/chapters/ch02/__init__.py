"""Chapter 2: vCPU threads and the BQL (2009–2011; MTTCG 2017).

``scenarios`` (its programs), ``checks`` (its exercises' checkers) and ``widgets`` (its sliders),
where the chapter has them.
"""
