import CLibbpf
print(libbpf_major_version(), libbpf_minor_version())
