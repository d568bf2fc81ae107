import TrellisNet
