{
  "targets": [
    {
      "target_name": "tpm_device",
      "sources": ["tpm_device.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
