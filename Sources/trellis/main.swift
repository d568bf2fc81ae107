import TrellisNetlink
print(netlinkProbe())
