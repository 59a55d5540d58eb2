package devicebuf

// CUDAOptions configure [NewCUDA].
type CUDAOptions struct {
	// LibraryPath is the driver library to load; "" searches for
	// libcuda.so.1 on the dynamic loader's path, then in the usual driver
	// directories (/usr/lib/x86_64-linux-gnu, /usr/local/nvidia/lib64,
	// /usr/lib64, /usr/lib/wsl/lib). CUDA toolkit stubs are never loaded:
	// they are not a driver.
	LibraryPath string
}

// CUDA memory types cuPointerGetAttribute reports
// (CU_POINTER_ATTRIBUTE_MEMORY_TYPE).
const (
	CUDAMemoryHost    = 1
	CUDAMemoryDevice  = 2
	CUDAMemoryArray   = 3
	CUDAMemoryUnified = 4
)

// cudaSearchDirs are where drivers install libcuda.so.1 besides the
// loader's own path.
var cudaSearchDirs = []string{"/usr/lib/x86_64-linux-gnu", "/usr/local/nvidia/lib64", "/usr/lib64", "/usr/lib/wsl/lib", "/usr/lib/aarch64-linux-gnu"}
